from torale.cli import app

app(prog_name="torale")
