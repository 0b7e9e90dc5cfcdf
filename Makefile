# Set-up is part of every target: the virtual environment is created and
# filled from requirements.txt the first time (and again when it changes);
# the Java bridge's Debian packages and chromium (for the dashboard's browser tests) are
# installed when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench bridge bridge-build bridge-deps chromium

$(STAMP): requirements.txt requirements-device.txt requirements-tff.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-tff.txt
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m device_sim demo $(ARGS)

test: $(STAMP) bridge chromium
	$(PY) -m pytest $(ARGS)

# The dashboard's browser tests drive Debian's chromium (Playwright never downloads a browser here).
chromium:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

bench: $(STAMP)
	$(PY) benchmarks/bench_model.py

# Java bridge (android_bridge/): plain javac and JUnit 4 from Debian; no Maven repository needed.
BRIDGE := android_bridge
BRIDGE_OUT := $(BRIDGE)/build
JAVA_SHARE := /usr/share/java
JSON_JAR := $(JAVA_SHARE)/com.android.json.jar
JUNIT_JARS := $(JAVA_SHARE)/junit4.jar:$(JAVA_SHARE)/hamcrest.jar
BRIDGE_SOURCES := $(shell find $(BRIDGE)/src/main/java -name '*.java')
BRIDGE_TESTS := $(shell find $(BRIDGE)/src/test -type f)
# TfLiteTrainer needs TensorFlow Lite for Android; here it is only type-checked against the
# compile-only declarations in src/tflite-api, never packaged.
BRIDGE_TFLITE := $(shell find $(BRIDGE)/src/tflite $(BRIDGE)/src/tflite-api -name '*.java')
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
JAVAC := javac --release 11 -encoding UTF-8 -Xlint:all,-try

bridge-deps:
	@if ! command -v javac >/dev/null || [ ! -f $(JSON_JAR) ] || [ ! -f $(JAVA_SHARE)/junit4.jar ] \
	    || [ ! -f $(JAVA_SHARE)/hamcrest.jar ]; then \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -q default-jdk-headless junit4 \
	    libhamcrest-java libandroid-json-java; \
	fi

$(BRIDGE_OUT)/fedwear-bridge.jar: $(BRIDGE_SOURCES) | bridge-deps
	@echo "javac $(BRIDGE)/src/main -> $@"
	@rm -rf $(BRIDGE_OUT)/classes
	@$(JAVAC) -cp $(JSON_JAR) -d $(BRIDGE_OUT)/classes $(BRIDGE_SOURCES)
	@jar cf $@ -C $(BRIDGE_OUT)/classes .

$(BRIDGE_OUT)/tflite.stamp: $(BRIDGE_OUT)/fedwear-bridge.jar $(BRIDGE_TFLITE)
	@echo "javac $(BRIDGE)/src/tflite (type check against src/tflite-api)"
	@rm -rf $(BRIDGE_OUT)/tflite-check
	@$(JAVAC) -cp $(BRIDGE_OUT)/fedwear-bridge.jar:$(JSON_JAR) -d $(BRIDGE_OUT)/tflite-check $(BRIDGE_TFLITE)
	@touch $@

$(BRIDGE_OUT)/tests.stamp: $(BRIDGE_OUT)/fedwear-bridge.jar $(BRIDGE_TESTS)
	@echo "javac $(BRIDGE)/src/test -> $(BRIDGE_OUT)/test-classes"
	@rm -rf $(BRIDGE_OUT)/test-classes
	@$(JAVAC) -cp $(BRIDGE_OUT)/fedwear-bridge.jar:$(JSON_JAR):$(JUNIT_JARS) -d $(BRIDGE_OUT)/test-classes \
	  $(filter %.java,$(BRIDGE_TESTS))
	@cp -r $(BRIDGE)/src/test/resources/. $(BRIDGE_OUT)/test-classes/
	@touch $@

bridge-build: $(BRIDGE_OUT)/tests.stamp $(BRIDGE_OUT)/tflite.stamp

bridge: bridge-build
	@java -cp $(BRIDGE_OUT)/fedwear-bridge.jar:$(BRIDGE_OUT)/test-classes:$(JSON_JAR):$(JUNIT_JARS) \
	  org.junit.runner.JUnitCore $$(cd $(BRIDGE_OUT)/test-classes && find . -name '*Test.class' \
	  | sed 's|^\./||; s|\.class$$||; s|/|.|g' | sort)
