"""The software HSM: pure algorithms, a key store and the gRPC service that fronts them."""
