"""Photo-folder library: ingestion, splitting by physical sample, nested training subsets."""
