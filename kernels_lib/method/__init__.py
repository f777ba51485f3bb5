"""The paper's method: the DoG family and its synthetic bank (`dog`), training corpora (`corpus`), the
autoencoder, its spectrum and labels (`spectrum`), exact nearest-code search (`search`), classification
(`classify`), k-means for 3×3 (`kmeans`), and which autoencoder classifies each size of a set (`per_set`)."""
