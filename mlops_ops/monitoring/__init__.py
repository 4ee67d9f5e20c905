"""Model monitoring: drift of the data a champion scores against the data it was trained on."""
