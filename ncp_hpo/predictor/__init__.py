"""The neural predictor: architecture code -> metrics (paper Section 3.1, Eq. 1-2, Appendix E.1).

:class:`NeuralPredictor` is the estimator (``fit`` / ``predict`` / ``score`` / ``save`` /
``load``); :func:`fit_setting_predictor` fits it on a benchmark setting the paper's way.
Modules: ``_estimator`` (the class), ``_network`` (the ensemble MLP), ``_training`` (the
loop), ``_checkpoint`` (safetensors files), ``_codes`` (input shapes and heads),
``_score`` (:class:`PredictorScore`), ``_setting``;
:func:`recalibrate`, :func:`fine_tune` and :func:`widen_inputs` (``_transfer``) carry a
fitted predictor over to a new task, or to a space with more inputs.

:class:`NeuralPredictor` is a small multi-head MLP with a scikit-learn-like interface:
``fit`` / ``predict`` / ``score`` / ``get_params`` / ``set_params`` / ``save`` / ``load``.
Propagation (:mod:`ncp_hpo.propagation`) back-propagates through its frozen weights with
:meth:`NeuralPredictor.forward_standardized`.

The model (paper Appendix E.1, upstream ``configs/*.yaml``)::

    z = (code - input_mean) / input_std                          # buffers, d
    h = dropout(swish(z @ W1 + b1))                              # shared layer, 256
    for each head g (a group of metrics):
        h_g = dropout(swish(h @ W2_g + b2_g))                    # one 128-wide layer per head
        y_j = h_g @ w3_j + b3_j       for each metric j in g     # 128 -> 1 per metric
    metric_j = y_j * target_std_j + target_mean_j                 # buffers, m

trained with the smooth-L1 loss on standardised targets, Adam (weight decay 1e-7) and a
one-cycle learning rate peaking at 0.01, batch 128, 200 epochs. ``n_members > 1`` trains an
ensemble; its members are stored as one ``n_members x ...`` weight tensor per layer, so the
whole ensemble runs as a few batched matrix products.

Determinism: every random draw of :meth:`NeuralPredictor.fit` (initialisation, the
per-epoch permutations, dropout masks) comes from one private ``torch.Generator`` seeded
with ``seed``; dropout is implemented with masks drawn from that generator (``F.dropout``
and ``nn.init`` would use the global RNG), and weights are initialised with
``Tensor.uniform_(generator=...)``, so the global torch RNG is neither read nor advanced.
Same ``seed``, data, parameters and thread count give bit-identical weights.

Differences from the upstream research code (``models/mlp.py``, ``datasets/dataset.py``):
upstream also puts ``BatchNorm1d`` on the input and after each hidden layer; here the
input is standardised with stored statistics and there is no batch normalisation (the
seg validation MAE is the paper's, ~0.75 mIoU, and propagation gradients do not depend
on batch statistics). Upstream computes the standardisation statistics on the whole table
(train and validation); here on the training codes only. Upstream's YAML configs switch
dropout off in the ``[flops, params]`` head; here one ``dropout`` applies to every layer.
"""

from ncp_hpo.exceptions import CheckpointError
from ncp_hpo.predictor._codes import as_code_batch
from ncp_hpo.predictor._estimator import NeuralPredictor
from ncp_hpo.predictor._score import PredictorScore
from ncp_hpo.predictor._setting import fit_setting_predictor, grouped_heads
from ncp_hpo.predictor._training import torch_threads
from ncp_hpo.predictor._transfer import fine_tune, recalibrate, widen_inputs

__all__ = [
    "CheckpointError",
    "NeuralPredictor",
    "PredictorScore",
    "as_code_batch",
    "fine_tune",
    "fit_setting_predictor",
    "grouped_heads",
    "recalibrate",
    "torch_threads",
    "widen_inputs",
]
