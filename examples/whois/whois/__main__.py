from whois.cli import main

main()
