"""The local registry mirror (:mod:`.mirror`) and a Registry HTTP API v2 client (:mod:`.api`)."""
