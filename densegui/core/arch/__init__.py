"""Network families: the protocol, the registry, the plan and layer table every family shares, and the
family packages (densenet/, resnet/)."""
