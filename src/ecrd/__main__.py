from ecrd.cli import main

main()
