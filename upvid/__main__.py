from upvid.cli import main

main()
