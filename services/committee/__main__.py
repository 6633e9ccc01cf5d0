from services.committee.main import main

main()
