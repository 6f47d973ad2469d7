"""The switch: acquiring gRPC API, pipeline of steps, routing, issuer channels, journal."""
