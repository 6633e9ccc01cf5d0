from services.channels.main import main

main()
