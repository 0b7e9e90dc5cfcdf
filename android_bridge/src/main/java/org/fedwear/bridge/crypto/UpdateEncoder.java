package org.fedwear.bridge.crypto;

import java.io.IOException;
import java.math.BigInteger;

/** Device side: update -> quantised slots -> packed plaintexts -> ciphertexts -> payload. */
public final class UpdateEncoder {
    public final CryptoParams params;
    public final PublicKey key;
    private final Randomiser randomiser;
    private final UniformSource uniforms;
    private final ModularMultiplier multiplier;

    public UpdateEncoder(CryptoParams params, PublicKey key, Randomiser randomiser, UniformSource uniforms) {
        if (key.bits != params.keyBits) {
            throw new CodecException("public key has " + key.bits + " bits, the parameters say " + params.keyBits);
        }
        this.params = params;
        this.key = key;
        this.randomiser = randomiser;
        this.uniforms = uniforms;
        this.multiplier = new ModularMultiplier(key.nSquare);
    }

    /** An encoder with the plan's live randomiser and secure uniform draws. */
    public UpdateEncoder(CryptoParams params, PublicKey key) {
        this(params, key, Randomiser.forMode(params.randomiser, key), Quantised.randomUniforms());
    }

    /** Encrypts prepared slots (values, weight, count) into a contribution payload for one round. */
    public byte[] encryptSlots(long[] slots, long roundId) throws IOException {
        BigInteger[] plaintexts = Packing.pack(slots, params);
        BigInteger[] r = randomiser.take(plaintexts.length);
        BigInteger[] ciphertexts = new BigInteger[plaintexts.length];
        for (int i = 0; i < plaintexts.length; i++) {
            BigInteger gm = BigInteger.ONE.add(key.n.multiply(plaintexts[i]));
            ciphertexts[i] = multiplier.multiply(gm, r[i]);
        }
        return Wire.encode(Wire.KIND_CONTRIBUTION, params, key, roundId, slots.length - 2, 1, ciphertexts);
    }

    /** Clips, quantises (stochastic rounding), packs and encrypts a float update for a round. */
    public EncryptedUpdate encode(float[] update, int weight, long roundId) throws IOException {
        Quantised quantised = Quantised.of(update, weight, params, uniforms);
        byte[] payload = encryptSlots(quantised.slots, roundId);
        return new EncryptedUpdate(payload, quantised.clippedFraction, update.length);
    }
}
