from universal_webhook.cli import main

main()
