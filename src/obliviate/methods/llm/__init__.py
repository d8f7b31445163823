"""Language-model unlearning methods; one file per plug-in:
the registry imports a module when one of its plug-ins is asked for (see `obliviate.registry`)."""
