"""Export: the float graph (BN folded by the models), calibration on images or on images
synthesized from BatchNorm statistics, bit planning, weight clipping, bias correction, learned
rounding, integerization to the integer graph (IR) and its validation. `ir` and `validate` are
torch-free; the rest may use torch. Export never imports training (training builds on it)."""
