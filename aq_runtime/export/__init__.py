"""Export: BN folding (models' float graphs), calibration, integerization to the integer graph
(IR) and its validation. `ir` and `validate` are torch-free; the rest may use torch."""
