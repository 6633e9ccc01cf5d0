from services.verification.main import main

main()
