"""Files shipped with densegui (installed as the package ``densegui.resources``)."""
