"""Numbers out of the database: classification results (`results`), tables, selection of what a figure
shows, PCA, scores (`evaluate`, `groundtruth`), the direct family fit (`fit`), cross-checks and master keys."""
