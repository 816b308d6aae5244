"""Docker-facing features built on the core: offline images, the registry mirror and its API client, the API trace, the VM, layers, the doctor."""
