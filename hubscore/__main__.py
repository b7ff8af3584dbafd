from hubscore.cli import app

app(prog_name="hubscore")
