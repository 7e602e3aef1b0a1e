"""The parts of ``concurrency.py`` (the script says what is measured and how).

* :mod:`.config`: the scenarios, their defaults and targets;
* :mod:`.stub`, :mod:`.raw`, :mod:`.agentdeck`: the model stub, the raw SDK side, agentdeck's;
* :mod:`.scenarios`: one repetition of each scenario;
* :mod:`.report`, :mod:`.options`: the report and the command line.
"""
