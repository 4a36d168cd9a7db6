"""Side-by-side measurements against reference tools, run by hand; results go to README.md."""
