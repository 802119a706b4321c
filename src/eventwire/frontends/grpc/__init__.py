"""The gRPC front door: servicers, interceptors, and the mapping of errors to gRPC status."""
