"""GLIDER Studio entry point: `python app.py --help` (also the Hugging Face Spaces app file)."""

from webapp.main import main

if __name__ == "__main__":
    main()
