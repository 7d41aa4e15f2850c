"""What a configuration costs and uses, computed: the torchinfo summary, the design sweeps and the
feature-reuse measures."""
