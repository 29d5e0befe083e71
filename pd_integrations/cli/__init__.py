"""The ``pd-integrations`` command (:func:`.main.main`).

Each command group is a module of its own, imported when the parser is built; the
emulator and the demo are imported only when their commands run.
"""
