"""Export: calibration on images or on images synthesized from BatchNorm statistics, bit
planning, weight clipping, bias correction, learned rounding and integerization of a float graph
(`ir.float_graph`) into the integer graph (`ir.graph`); the model sources it starts from
(`sources`). Some stages use torch. Export never imports training (training builds on it)."""
