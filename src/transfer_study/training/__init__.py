"""Training: data from the decoded-image cache, optimisers by name, train/evaluate loops."""
