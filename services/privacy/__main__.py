from services.privacy.main import main

main()
