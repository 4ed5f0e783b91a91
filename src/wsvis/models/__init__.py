"""Networks built on torchvision: backbones (and, later, Mask R-CNN and CondInst)."""
