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
