"""The ZK rollup: Poseidon account tree, batch witnesses, circuit builds and Groth16 proofs."""
