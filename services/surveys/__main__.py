from services.surveys.main import main

main()
