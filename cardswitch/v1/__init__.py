"""Generated gRPC stubs; run ./run proto, do not edit."""
