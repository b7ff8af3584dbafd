from hubscore.cli import run

run()
