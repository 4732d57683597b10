"""Array operations shared by the model, the crossbar model and the training loop (jax only).

Nothing here imports flax or the rest of rramjax, so every room can use it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def conv3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """The ideal convolution of a 3x3 layer: stride 1, SAME zero padding, float32 accumulation.

  Args:
    x: inputs `(N, H, W, Cin)` (NHWC).
    kernel: weights `(3, 3, Cin, Cout)` (flax HWIO).

  Returns:
    `(N, H, W, Cout)` float32 (integer-valued inputs give the exact integer sums below 2^24).

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.ones((1, 3, 3, 1))
    >>> kernel = jnp.ones((3, 3, 1, 1))
    >>> conv3x3(x, kernel)[0, :, :, 0]  # taps inside the image: 4 at corners, 9 at the centre
    Array([[4., 6., 4.],
           [6., 9., 6.],
           [4., 6., 4.]], dtype=float32)
  """
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=(1, 1), padding="SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"), preferred_element_type=jnp.float32)


def max_pool2x2(x: jax.Array) -> jax.Array:
  """2x2 max pooling, stride 2, VALID (an odd last row or column is dropped), NHWC.

  The same values as `flax.nnx.max_pool(x, (2, 2), strides=(2, 2))`, written as the elementwise
  maximum of the window's four strided slices: its backward pass is elementwise selects instead of
  XLA's select-and-scatter, which on a CPU costs ~6-10x more (scripts/bench_pool.py), and the
  batch axis is never reshaped (a data-parallel batch stays sharded). Where a window holds equal
  maxima the gradient is shared among them (jax's rule for `maximum`), a valid subgradient like
  the first-max one.

  Example:
    >>> import jax.numpy as jnp
    >>> x = jnp.arange(25.0).reshape(1, 5, 5, 1)
    >>> max_pool2x2(x)[0, :, :, 0]
    Array([[ 6.,  8.],
           [16., 18.]], dtype=float32)
  """
  h, w = x.shape[1] // 2 * 2, x.shape[2] // 2 * 2
  return jnp.maximum(jnp.maximum(x[:, 0:h:2, 0:w:2], x[:, 1:h:2, 0:w:2]),
                     jnp.maximum(x[:, 0:h:2, 1:w:2], x[:, 1:h:2, 1:w:2]))
