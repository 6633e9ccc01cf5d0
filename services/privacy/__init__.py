"""The privacy service: data subjects, legal holds, erasure and retention (PDPL)."""
