"""The parts of ``credits.py`` (the script says what is measured and how).

* :mod:`.config`, :mod:`.environment`: the constants, Django on its database and channel layer;
* :mod:`.fixture`: the users and runs, created before anything is timed;
* :mod:`.sql`, :mod:`.workers`: one settlement of each side, the concurrent workers;
* :mod:`.measure`: one measurement and its checks, the reconciliation;
* :mod:`.report`, :mod:`.options`: the report and the command line.
"""
