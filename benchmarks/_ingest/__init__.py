"""The parts of ``ingest.py`` (the script says what is measured and how).

* :mod:`.config`, :mod:`.environment`: the constants, Django with the local embedder;
* :mod:`.corpus`: the generated documents;
* :mod:`.work`, :mod:`.measure`: the model, the pipeline, one configuration's measurements;
* :mod:`.report`, :mod:`.options`: the report and the command line.
"""
