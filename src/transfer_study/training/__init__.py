"""Training: the device, the decoded-image cache and loaders over it, optimisers by name,
train/evaluate loops, frozen-backbone features, and training and testing a variant."""
