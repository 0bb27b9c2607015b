from clockify_core.simulator.cli import main

main()
