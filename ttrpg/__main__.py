from ttrpg.cli import main

main()
