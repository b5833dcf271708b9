from sdd_opt.cli import main

main()
