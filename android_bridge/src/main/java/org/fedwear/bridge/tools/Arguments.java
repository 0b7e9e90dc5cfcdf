package org.fedwear.bridge.tools;

import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/** "--name value" and "--flag" command-line arguments, checked against the names a tool knows. */
final class Arguments {
    private final Map<String, String> values = new HashMap<>();
    private final Set<String> flags = new HashSet<>();

    Arguments(String[] args, Set<String> options, Set<String> knownFlags) {
        for (int i = 0; i < args.length; i++) {
            String name = args[i];
            if (knownFlags.contains(name)) {
                flags.add(name);
            } else if (options.contains(name) && i + 1 < args.length) {
                values.put(name, args[++i]);
            } else {
                throw new IllegalArgumentException("unknown or incomplete argument " + name);
            }
        }
    }

    String required(String name) {
        String value = values.get(name);
        if (value == null) {
            throw new IllegalArgumentException(name + " is required");
        }
        return value;
    }

    String optional(String name, String fallback) {
        return values.getOrDefault(name, fallback);
    }

    boolean flag(String name) {
        return flags.contains(name);
    }
}
