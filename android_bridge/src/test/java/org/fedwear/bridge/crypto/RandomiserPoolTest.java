package org.fedwear.bridge.crypto;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.File;
import java.io.RandomAccessFile;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.HashSet;
import java.util.Set;
import org.fedwear.bridge.Vectors;
import org.junit.BeforeClass;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

public class RandomiserPoolTest {
    private static PublicKey key;

    @Rule
    public TemporaryFolder folder = new TemporaryFolder();

    @BeforeClass
    public static void load() throws Exception {
        key = Vectors.key(Vectors.load("codec.json"));
    }

    /** Cheap distinct "randomisers": the pool's rules do not depend on what the numbers are. */
    private static Randomiser counting(int[] next) {
        return count -> {
            BigInteger[] out = new BigInteger[count];
            for (int i = 0; i < count; i++) {
                out[i] = BigInteger.valueOf(++next[0]).shiftLeft(3000);
            }
            return out;
        };
    }

    @Test
    public void noRandomiserIsHandedOutTwiceAcrossRestarts() throws Exception {
        File file = new File(folder.getRoot(), "sub/pool");
        int[] next = {0};
        new RandomiserPool(file, key).fill(10, counting(next));
        Set<BigInteger> seen = new HashSet<>();
        for (int restart = 0; restart < 5; restart++) {
            RandomiserPool pool = new RandomiserPool(file, key);  // a new process: only the file remains
            assertEquals(10 - 2 * restart, pool.size());
            for (BigInteger r : pool.take(2)) {
                assertTrue("handed out twice: " + r, seen.add(r));
            }
        }
        assertEquals(10, seen.size());
        assertEquals(37, file.length());  // header only: every record was removed before it was returned
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(file.toPath())));
    }

    @Test
    public void anExhaustedPoolSaysSoAndKeepsWhatItHolds() throws Exception {
        File file = new File(folder.getRoot(), "pool");
        RandomiserPool pool = new RandomiserPool(file, key);
        pool.fill(3, counting(new int[] {0}));
        try {
            pool.take(4);
            fail("took more than the pool holds");
        } catch (PoolExhaustedException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("holds 3, 4 needed"));
        }
        assertEquals(3, pool.size());
    }

    @Test
    public void aPoolOfAnotherKeyOrWithATruncatedRecordIsRefused() throws Exception {
        File file = new File(folder.getRoot(), "pool");
        new RandomiserPool(file, key).fill(1, counting(new int[] {0}));
        try {
            new RandomiserPool(file, new PublicKey(key.n.add(BigInteger.valueOf(2))));
            fail("opened a pool of another key");
        } catch (CodecException e) {
            assertTrue(e.getMessage().contains("another key"));
        }
        try (RandomAccessFile raf = new RandomAccessFile(file, "rw")) {
            raf.setLength(raf.length() - 1);
        }
        try {
            new RandomiserPool(file, key);
            fail("opened a pool with a truncated record");
        } catch (CodecException e) {
            assertTrue(e.getMessage().contains("truncated record"));
        }
    }

    @Test
    public void anEncoderDrawingFromThePoolEmptiesItByOneRandomiserPerCiphertext() throws Exception {
        File file = new File(folder.getRoot(), "pool");
        RandomiserPool pool = new RandomiserPool(file, key);
        pool.fill(5, new StandardRandomiser(key));
        CryptoParams params = new CryptoParams(2048, 16, 1.0, 10, 10, "standard", 0);
        UpdateEncoder encoder = new UpdateEncoder(params, key, pool, Quantised.randomUniforms());
        encoder.encode(new float[200], 3, 1);
        assertEquals(5 - params.plaintextsFor(200), pool.size());
    }
}
