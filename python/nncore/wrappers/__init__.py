"""scikit-learn estimators around nncore models, as Keras 3's ``keras.wrappers``.

``SKLearnClassifier``, ``SKLearnRegressor`` and ``SKLearnTransformer`` make a compiled model (or a
function building one) a scikit-learn estimator, so ``cross_val_score``, ``KFold`` /
``StratifiedKFold``, ``GridSearchCV`` and ``Pipeline`` work. scikit-learn is optional
(``pip install "nncore[sklearn]"``): without it these classes still import and say so when made.
"""

from ._sklearn import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]
