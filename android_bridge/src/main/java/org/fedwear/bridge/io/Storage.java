package org.fedwear.bridge.io;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.StandardOpenOption;

/** Crash-safe file writes: a reader sees the old content or the new, never a part. */
public final class Storage {
    private Storage() {
    }

    /** Writes to a temporary file beside {@code target}, fsyncs it, renames it over the target, fsyncs the folder. */
    public static void writeAtomically(File target, byte[] data, boolean ownerOnly) throws IOException {
        File dir = target.getAbsoluteFile().getParentFile();
        if (!dir.isDirectory() && !dir.mkdirs()) {
            throw new IOException("cannot create " + dir);
        }
        File tmp = File.createTempFile("." + target.getName() + ".", ".tmp", dir);
        try {
            if (ownerOnly) {
                ownerOnly(tmp);
            }
            try (FileOutputStream out = new FileOutputStream(tmp)) {
                out.write(data);
                out.getFD().sync();
            }
            if (!tmp.renameTo(target)) {
                throw new IOException("cannot rename " + tmp + " to " + target);
            }
        } finally {
            if (tmp.exists() && !tmp.delete()) {
                tmp.deleteOnExit();
            }
        }
        syncDirectory(dir);
    }

    /** Makes a file readable and writable by its owner only (mode 0600 on POSIX). */
    public static void ownerOnly(File file) throws IOException {
        boolean ok = file.setReadable(false, false) && file.setWritable(false, false)
                && file.setReadable(true, true) && file.setWritable(true, true);
        if (!ok) {
            throw new IOException("cannot restrict " + file + " to its owner");
        }
    }

    private static void syncDirectory(File dir) {
        try (FileChannel channel = FileChannel.open(dir.toPath(), StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException | UnsupportedOperationException e) {
            // Some file systems cannot open a folder for reading; the rename itself stands.
        }
    }
}
