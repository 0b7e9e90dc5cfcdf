package org.fedwear.bridge.crypto;

import java.io.File;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.math.BigInteger;
import java.nio.channels.FileLock;
import java.util.Arrays;
import org.fedwear.bridge.io.Storage;

/**
 * Randomisers computed ahead of use (while the device charges) in one file bound to one public key.
 *
 * <p>The file format is the Python SDK's: "FWRP" 0x02, the key fingerprint, then records of
 * 2 * ceil(bits / 8) bytes, unsigned big-endian. {@link #take} reads the last records and truncates
 * the file, with an fsync, before it returns them, so a randomiser is never handed out twice, in one
 * process or across crashes and restarts. The file must stay the device's alone: a copy restored
 * from a backup or a cloned device image would hand randomisers out a second time.
 */
public final class RandomiserPool implements Randomiser {
    private static final byte[] MAGIC = {'F', 'W', 'R', 'P', 2};  // version 2: bound to the version-2 key fingerprint

    private final File file;
    private final PublicKey key;
    private final byte[] header;
    private final int width;

    /** Opens the pool file, or creates it (owner-only) when it does not exist. */
    public RandomiserPool(File file, PublicKey key) throws IOException {
        this.file = file;
        this.key = key;
        this.width = 2 * ((key.bits + 7) / 8);
        this.header = new byte[MAGIC.length + 32];
        System.arraycopy(MAGIC, 0, header, 0, MAGIC.length);
        System.arraycopy(key.fingerprint(), 0, header, MAGIC.length, 32);
        synchronized (RandomiserPool.class) {
            if (file.exists()) {
                check();
            } else {
                create();
            }
        }
    }

    private void check() throws IOException {
        try (RandomAccessFile raf = new RandomAccessFile(file, "r")) {
            byte[] head = new byte[header.length];
            if (raf.length() < header.length || raf.read(head) != head.length || !Arrays.equals(head, header)) {
                throw new CodecException(file + ": randomiser pool of another key or not a pool file");
            }
            if ((raf.length() - header.length) % width != 0) {
                throw new CodecException(file + ": randomiser pool has a truncated record");
            }
        }
    }

    private void create() throws IOException {
        File parent = file.getAbsoluteFile().getParentFile();
        if (!parent.isDirectory() && !parent.mkdirs()) {
            throw new IOException("cannot create " + parent);
        }
        if (!file.createNewFile()) {
            throw new IOException(file + " appeared while the pool was being created");
        }
        Storage.ownerOnly(file);
        try (RandomAccessFile raf = new RandomAccessFile(file, "rw")) {
            raf.write(header);
            raf.getFD().sync();
        }
    }

    /** Unused randomisers in the file. */
    public int size() {
        return (int) ((file.length() - header.length) / width);
    }

    /** Computes {@code count} more randomisers with {@code source} and appends them (fsync). */
    public void fill(int count, Randomiser source) throws IOException {
        BigInteger[] fresh = source.take(count);
        synchronized (RandomiserPool.class) {
            try (RandomAccessFile raf = new RandomAccessFile(file, "rw"); FileLock lock = raf.getChannel().lock()) {
                raf.seek(raf.length());
                for (BigInteger r : fresh) {
                    raf.write(Bytes.unsigned(r, width));
                }
                raf.getFD().sync();
            }
        }
    }

    /**
     * Removes {@code count} randomisers from the end of the file and returns them.
     *
     * @throws PoolExhaustedException when the pool holds fewer
     */
    @Override
    public BigInteger[] take(int count) throws IOException {
        byte[] data = new byte[count * width];
        synchronized (RandomiserPool.class) {
            try (RandomAccessFile raf = new RandomAccessFile(file, "rw"); FileLock lock = raf.getChannel().lock()) {
                long available = (raf.length() - header.length) / width;
                if (count > available) {
                    throw new PoolExhaustedException("randomiser pool holds " + available + ", " + count
                            + " needed: fill it first");
                }
                long keep = header.length + (available - count) * width;
                raf.seek(keep);
                raf.readFully(data);
                raf.setLength(keep);
                raf.getFD().sync();
            }
        }
        BigInteger[] out = new BigInteger[count];
        for (int i = 0; i < count; i++) {
            out[i] = new BigInteger(1, Arrays.copyOfRange(data, i * width, (i + 1) * width));
        }
        return out;
    }

    public PublicKey key() {
        return key;
    }
}
