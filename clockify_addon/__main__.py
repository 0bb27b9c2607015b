from clockify_addon.cli import main

main()
