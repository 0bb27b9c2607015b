from api_studio.cli import main

main()
