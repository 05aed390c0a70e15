"""Layer 7, evaluation: does the generated music sound like its data? (chapters 7 and 8).

- :mod:`b2b.evaluation.metrics`: music metrics, MGEval-style distribution comparison;
- :mod:`b2b.evaluation.twosample`: the classifier two-sample test;
- :mod:`b2b.evaluation.scorecard`: the scorecard against its targets, ``rank_key``;
- :mod:`b2b.evaluation.report`: the real-versus-generated report, built (no files);
- :mod:`b2b.evaluation.figures`: the report's figures;
- :mod:`b2b.evaluation.evaluate`: the report's files and the ``b2b evaluate`` command;
- :mod:`b2b.evaluation.listening`: the listening quiz.
"""

from b2b.evaluation.evaluate import load_real
from b2b.evaluation.listening import listening_quiz
from b2b.evaluation.scorecard import rank_key
from b2b.evaluation.twosample import classifier_two_sample_test

# (the functions named like their modules, evaluate.evaluate and scorecard.scorecard, are imported from
# their modules: here the names are the modules)
__all__ = ["load_real", "classifier_two_sample_test", "rank_key", "listening_quiz"]
