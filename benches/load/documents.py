"""Generated product documents for the load run: python3 documents.py COUNT > docs.json"""
import json
import random
import sys

random.seed(7)
WORDS = ("wireless organic cotton steel blue premium kit ultra light garden coffee smart "
         "vintage leather pro mini outdoor classic red portable compact durable natural "
         "ergonomic modern rustic electric bamboo ceramic glass carbon silk wool").split()
BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay"]
CATEGORIES = ["kitchen", "garden", "office", "sport", "travel", "audio", "home", "toys"]

count = int(sys.argv[1])
docs = []
for i in range(count):
    docs.append({
        "id": i,
        "title": " ".join(random.choices(WORDS, k=3)).title(),
        "description": " ".join(random.choices(WORDS, k=30)),
        "brand": random.choice(BRANDS),
        "category": random.choice(CATEGORIES),
        "price": round(random.uniform(1, 500), 2),
        "rating": random.randint(1, 5),
    })
json.dump(docs, sys.stdout)
