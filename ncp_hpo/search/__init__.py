"""The search engine behind both adapters: sampler and task registry (:mod:`.registry`)."""
